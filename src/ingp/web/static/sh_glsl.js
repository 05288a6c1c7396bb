// GLSL of tcnn's SphericalHarmonics encoding of a given degree, generated straight-line from the recurrences that
// ingp.encodings.spherical_harmonics documents (C_m + i S_m = (x + i y)^m; associated Legendre polynomials P_l^m
// without the (1 - z^2)^(m/2) factor; normalisation K_l^m, sqrt(2) for m != 0). Output index l^2 + l + m.
//   shSource(degree) -> "void sh_eval(vec3 v, out float s[degree^2])"   // v in [0, 1]^3: (direction + 1) / 2
import { glslFloat } from "./field_glsl.js";

function factorial(n) {
  let f = 1;
  for (let i = 2; i <= n; i++) f *= i;
  return f;
}

export function shSource(degree) {
  const lines = ["  vec3 p = v * 2.0 - 1.0;", "  float x = p.x, y = p.y, z = p.z;", "  float C0 = 1.0, S0 = 0.0;"];
  for (let m = 1; m < degree; m++) {
    lines.push(`  float C${m} = x * C${m - 1} - y * S${m - 1}, S${m} = x * S${m - 1} + y * C${m - 1};`);
  }
  const P = (l, m) => `P${l}_${m}`;
  let diag = 1;  // P_m^m = (1 - 2m) P_{m-1}^{m-1}: a constant
  for (let m = 0; m < degree; m++) {
    if (m > 0) diag *= 1 - 2 * m;
    lines.push(`  float ${P(m, m)} = ${glslFloat(diag)};`);
    if (m + 1 < degree) lines.push(`  float ${P(m + 1, m)} = ${glslFloat(2 * m + 1)} * z * ${P(m, m)};`);
    for (let l = m + 2; l < degree; l++) {
      lines.push(`  float ${P(l, m)} = (${glslFloat(2 * l - 1)} * z * ${P(l - 1, m)} - ${glslFloat(l + m - 1)} * ` +
        `${P(l - 2, m)}) / ${glslFloat(l - m)};`);
    }
  }
  for (let l = 0; l < degree; l++) {
    for (let m = -l; m <= l; m++) {
      const a = Math.abs(m);
      let k = Math.sqrt(((2 * l + 1) * factorial(l - a)) / (4 * Math.PI * factorial(l + a)));
      if (m !== 0) k *= Math.SQRT2;
      const trig = m === 0 ? "" : ` * ${m > 0 ? "C" : "S"}${a}`;
      lines.push(`  s[${l * l + l + m}] = ${glslFloat(Math.fround(k))}${trig} * ${P(l, a)};`);
    }
  }
  return `void sh_eval(vec3 v, out float s[${degree * degree}]) {\n${lines.join("\n")}\n}\n`;
}
