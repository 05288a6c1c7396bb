"""The "surface" NeLF students of docs/nelf.md (a prototype, not in the package) against the grid light field, on the
same teacher pseudo-data and a fixed number of steps: PSNR on 5 test views at half size, beside the teacher's.

    python benchmarks/nelf_surface.py TEACHER_RUN grid|surface|teachercol STEPS [THREADS] [--pseudo-rays N]

grid: ingp's default student; surface: a 4-D grid gives depth (fraction of the chord) and opacity, a fresh 3-D
HashGrid + SH MLP gives the colour there; teachercol: the same depth/opacity grid, the colour from a copy of the
teacher's radiance field fine-tuned at lr 1e-3. The pseudo-data (with the teacher's opacity and depth) is cached in
/tmp/nelf_surface_pseudo_N.npz and shared by the three runs.
"""
import sys, time, math
import numpy as np, torch
from pathlib import Path
N = 1 << 21
if "--pseudo-rays" in sys.argv:
    i = sys.argv.index("--pseudo-rays")
    N = int(sys.argv[i + 1])
    del sys.argv[i:i + 2]
torch.set_num_threads(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
from ingp.nelf.distill import load_teacher, teacher_renderer, scene_sphere, RealPixels
from ingp.nelf.pseudo import pseudo_rays
from ingp.nelf.model import GridLightField, default_student_config
from ingp.nelf.rays import chord, two_sphere
from ingp.nerf.fit import load_splits
from ingp.nerf.render import render_rays
from ingp.nerf.rays import pixel_rays
from ingp.modules import NetworkWithInputEncoding

teacher_path, kind, steps = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
cache = Path(f"/tmp/nelf_surface_pseudo_{N}.npz")
model, grid, cfg, _ = load_teacher(teacher_path, torch.device("cpu"))
data = cfg["data"]; aabb = tuple(data["aabb"])
train_scene, test_scene = load_splits(data["path"], 2)
sphere = scene_sphere(train_scene, aabb)
centre = torch.tensor(sphere["centre"])
if not cache.exists():
    t0 = time.time(); gen = torch.Generator().manual_seed(1)
    R, C, A, D = [], [], [], []
    for j in range(0, N, 32768):
        o, d = pseudo_rays(train_scene, min(32768, N - j), gen, centre)
        c, a, dep = render_rays(model, grid, o, d, aabb, cone=cfg["training"]["cone_angle"], background=torch.ones(3))
        R.append(torch.cat([o, d], 1)); C.append(c); A.append(a); D.append(dep)
    np.savez(cache, rays=torch.cat(R).numpy(), rgb=torch.cat(C).clamp(0,1).numpy(), alpha=torch.cat(A).numpy(), depth=torch.cat(D).numpy())
    print("pseudo", time.time() - t0, flush=True)
z = np.load(cache)
rays, rgbs, alph, dep = (torch.from_numpy(z[k]) for k in ("rays", "rgb", "alpha", "depth"))
radius = sphere["radius"]; frame = torch.tensor(sphere["frame"])

class Surface(torch.nn.Module):
    def __init__(self):
        super().__init__()
        g = default_student_config("grid")
        self.geo = NetworkWithInputEncoding(4, 2, g["encoding"], {**g["network"], "output_activation": "None"}, seed=1)
        enc = {"otype": "Composite", "nested": [
            {"n_dims_to_encode": 3, "otype": "HashGrid", "n_levels": 16, "n_features_per_level": 2,
             "log2_hashmap_size": 19, "base_resolution": 16, "per_level_scale": math.exp(math.log(1024/16)/15)},
            {"n_dims_to_encode": 3, "otype": "SphericalHarmonics", "degree": 4}]}
        self.col = NetworkWithInputEncoding(6, 3, enc, {**g["network"], "output_activation": "Sigmoid"}, seed=2)
        for m in (self.geo, self.col): m.check_inputs = False
    def colour(self, o, d, t):
        """(N, 3) rays, (N,) depths -> (N, 3) rgb of the fresh 3-D colour field at o + t d, looking along d."""
        p = ((o + t[:, None] * d - centre) / radius * 0.5 + 0.5).clamp(0, 1)
        return self.col(torch.cat([p, d * 0.5 + 0.5], 1))
    def forward(self, o, d):
        """-> colour over white (N, 3), depth fraction f (N,), opacity a (N,), chord ends t_in, t_out (N,)."""
        t_in, t_out, hit = chord(o, d, centre, radius)
        x, _ = two_sphere(o, d, centre, radius, frame)
        g = self.geo(x)
        f, a = torch.sigmoid(g[:, 0]), torch.sigmoid(g[:, 1])
        rgb = self.colour(o, d, t_in + f * (t_out - t_in))
        out = a[:, None] * rgb + (1 - a[:, None])
        out = torch.where(hit[:, None], out, torch.ones_like(out))
        return out, f, a, t_in, t_out

class TeacherColour(Surface):
    def __init__(self):
        super().__init__()
        import copy
        self.col = copy.deepcopy(model)
    def colour(self, o, d, t):
        return self.col(o + t[:, None] * d, d)[1]

if kind == "grid":
    student = GridLightField(default_student_config("grid"), sphere, 1)
elif kind == "teachercol":
    student = TeacherColour()
else:
    student = Surface()
groups = [{"params": list(student.geo.parameters()), "lr": 1e-2}, {"params": list(student.col.parameters()), "lr": 1e-3 if kind == "teachercol" else 1e-2}] if kind != "grid" else [{"params": list(student.parameters()), "lr": 1e-2}]
opt = torch.optim.Adam(groups, betas=(0.9, 0.99), eps=1e-15)
real = RealPixels(train_scene)
gen = torch.Generator().manual_seed(2)
B = 1 << 14
t0 = time.time()
for s in range(steps):
    idx = torch.randint(len(rays), (B // 2,), generator=gen)
    o2, d2, c2 = rays[idx, :3], rays[idx, 3:], rgbs[idx]
    o1, d1, c1 = real.sample(B // 2, gen)
    o, d, c = torch.cat([o1, o2]), torch.cat([d1, d2]), torch.cat([c1, c2])
    if kind == "grid":
        loss = ((student(o, d) - c) ** 2).mean()
    else:
        out, f, a, t_in, t_out = student(o, d)
        loss = ((out - c) ** 2).mean()
        at, dt = alph[idx], dep[idx]
        ft = ((dt / at.clamp_min(1e-4) - t_in[B//2:]) / (t_out - t_in)[B//2:].clamp_min(1e-6)).clamp(0, 1)
        loss = loss + 0.1 * (at * (f[B//2:] - ft) ** 2).mean() + 0.1 * ((a[B//2:] - at) ** 2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
    if s % 200 == 0: print(s, float(loss.detach()), round(time.time() - t0), flush=True)
# evaluate on 5 test views at half res vs photo and teacher
ps, pt = [], []
with torch.no_grad():
    for i in range(0, len(test_scene), len(test_scene) // 5):
        s = test_scene; H, W = s.height, s.width
        yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
        xx, yy = xx.reshape(-1).float() + 0.5, yy.reshape(-1).float() + 0.5
        n = len(xx); ii = torch.full((n,), i)
        o, d = pixel_rays(s.c2w[ii], s.intrinsics[ii], s.distortion[ii], xx, yy, s.fisheye)
        pred = torch.cat([(student(o[k:k+32768], d[k:k+32768]) if kind == "grid" else student(o[k:k+32768], d[k:k+32768])[0]) for k in range(0, n, 32768)])
        tc = render_rays(model, grid, o, d, aabb, cone=cfg["training"]["cone_angle"], background=torch.ones(3))[0]
        px = s.images[i].reshape(-1, 4).float() / 255; gt = px[:, :3] * px[:, 3:] + 1 - px[:, 3:]
        mse = lambda a, b: float(((a.clamp(0,1) - b) ** 2).mean())
        ps.append(-10 * math.log10(mse(pred, gt))); pt.append(-10 * math.log10(mse(tc, gt)))
        print(f"view {i}: student {ps[-1]:.2f} teacher {pt[-1]:.2f}", flush=True)
print(kind, steps, "student", np.mean(ps), "teacher", np.mean(pt), "train s", time.time() - t0)
