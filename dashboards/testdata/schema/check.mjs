// Checks Grafana dashboard JSON files against @grafana/schema, the types
// Grafana itself is built from: the dashboard model, and each panel's
// options and custom field config against its plugin's types. TypeScript's
// excess-property checks on object literals reject unknown fields, so a field
// the current schema dropped fails as surely as a wrong type.
//
//   node check.mjs dashboard.json...   (exit 1 and one line per error)
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const here = path.dirname(fileURLToPath(import.meta.url));
const cfg = '@grafana/schema/dist/esm/raw/composable';
const plugins = {
  timeseries: `${cfg}/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen`,
  stat: `${cfg}/stat/panelcfg/x/StatPanelCfg_types.gen`,
  table: `${cfg}/table/panelcfg/x/TablePanelCfg_types.gen`,
};

// The schema's string enums are nominal in TypeScript; JSON holds their
// values. Lit turns every string enum into the union of its values.
let src = `import type { Dashboard } from '@grafana/schema';
type Lit<T> = T extends string ? \`\${T}\` : T extends (infer U)[] ? Lit<U>[] : T extends object ? { [K in keyof T]: Lit<T[K]> } : T;
`;
for (const [name, mod] of Object.entries(plugins)) {
  src += `import type { Options as ${name}Options } from '${mod}';\n`;
  // A plugin without FieldConfig (stat) takes no custom field config.
  const dts = fs.readFileSync(path.join(here, 'node_modules', `${mod}.d.ts`), 'utf8');
  src += /export (interface|type) FieldConfig\b/.test(dts)
    ? `import type { FieldConfig as ${name}FieldConfig } from '${mod}';\n`
    : `type ${name}FieldConfig = Record<string, never>;\n`;
}
const where = []; // generated line -> what it checks
const emit = (what, decl) => {
  where[src.split('\n').length] = what;
  src += decl + '\n';
};
// A query's own fields (expr, legendFormat, ...) belong to its data source
// plugin, which @grafana/schema does not carry; the generic DataQuery part is
// checked here, and TestQueriesParse has promtool parse every expr.
const dataQuery = (q) => Object.fromEntries(Object.entries(q).filter(([k]) =>
  ['refId', 'datasource', 'hide', 'key', 'queryType'].includes(k)));
let n = 0;
for (const file of process.argv.slice(2)) {
  const d = JSON.parse(fs.readFileSync(file, 'utf8'));
  for (const p of d.panels ?? []) if (p.targets) p.targets = p.targets.map(dataQuery);
  for (const a of d.annotations?.list ?? []) if (a.target) a.target = dataQuery(a.target);
  const name = path.basename(file);
  emit(`${name}`, `const d${n}: Lit<Dashboard> = ${JSON.stringify(d, null, 1)};`);
  for (const p of d.panels ?? []) {
    if (p.type === 'row') continue;
    const what = `${name} panel ${p.id} "${p.title}" (${p.type})`;
    if (!plugins[p.type]) {
      console.log(`${what}: no schema for panel type ${p.type}; add it to check.mjs`);
      process.exitCode = 1;
      continue;
    }
    emit(`${what} options`, `const o${n}_${p.id}: Lit<${p.type}Options> = ${JSON.stringify(p.options ?? {}, null, 1)};`);
    emit(`${what} fieldConfig.defaults.custom`, `const c${n}_${p.id}: Lit<${p.type}FieldConfig> = ${JSON.stringify(p.fieldConfig?.defaults?.custom ?? {}, null, 1)};`);
  }
  n++;
}

const gen = path.join(here, '.check.gen.ts');
fs.writeFileSync(gen, src);
try {
  const program = ts.createProgram([gen], {
    strict: true, noEmit: true, skipLibCheck: true, noUnusedLocals: false,
    target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler, types: [],
  });
  const diags = ts.getPreEmitDiagnostics(program);
  for (const dg of diags) {
    let what = 'check.mjs';
    if (dg.file && dg.start !== undefined) {
      const line = dg.file.getLineAndCharacterOfPosition(dg.start).line + 1;
      for (let l = line; l > 0; l--) if (where[l]) { what = where[l]; break; }
    }
    const msg = ts.flattenDiagnosticMessageText(dg.messageText, ' ');
    console.log(`${what}: ${msg}`);
  }
  if (diags.length > 0) process.exitCode = 1;
  else console.log(`ok: ${n} dashboards valid against @grafana/schema ${JSON.parse(fs.readFileSync(path.join(here, 'node_modules/@grafana/schema/package.json'), 'utf8')).version}`);
} finally {
  fs.rmSync(gen, { force: true });
}
