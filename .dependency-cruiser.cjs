// The import directions of DESIGN.md, checked in CI: core imports nothing of ours
// outside core; reference and backends import core (the cpu backend also reference);
// train imports core and the Backend interface; worker and cli import train and
// store; ui reaches training only through the worker's LabApi type.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'core-is-pure',
      comment: 'src/core runs in browser, worker and Node: it imports only core.',
      severity: 'error',
      from: { path: '^src/core/' },
      to: { path: '^src/', pathNot: '^src/core/' },
    },
    {
      name: 'core-no-node',
      comment: 'src/core must not use Node built-ins (it runs in the browser).',
      severity: 'error',
      from: { path: '^src/(core|reference|train)/' },
      to: { dependencyTypes: ['core'] },
    },
    {
      name: 'reference-imports-core',
      severity: 'error',
      from: { path: '^src/reference/' },
      to: { path: '^src/', pathNot: '^src/(core|reference)/' },
    },
    {
      name: 'backends-below-train',
      comment: 'Backends know nothing of the trainer, the worker, the CLI, storage or the UI.',
      severity: 'error',
      from: { path: '^src/backends/' },
      to: { path: '^src/(train|worker|cli|store|serve|ui)/' },
    },
    {
      name: 'only-cpu-backend-uses-reference',
      severity: 'error',
      from: { path: '^src/backends/', pathNot: '^src/backends/cpu\\.ts$' },
      to: { path: '^src/reference/' },
    },
    {
      name: 'train-uses-interface-only',
      comment: 'The trainer talks to any backend through backend.ts only.',
      severity: 'error',
      from: { path: '^src/train/' },
      to: { path: '^src/(backends/(?!backend\\.ts)|reference/|worker/|cli/|store/|serve/|ui/)' },
    },
    {
      name: 'ui-through-lab-api',
      comment: 'The UI reaches training only through the LabApi type of src/worker/api.ts.',
      severity: 'error',
      from: { path: '^src/ui/' },
      to: { path: '^src/(train|backends|reference|store|cli|serve)/|^src/worker/(?!api\\.ts)' },
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
