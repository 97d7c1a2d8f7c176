import { applyFixtureDiff } from '../test/fixture-diffs.ts';
for (const f of process.argv.slice(2)) console.log(applyFixtureDiff(f));
