#!/bin/bash
# runs each lesson-6 fixture with its Check and reports whether its Verdict appears
cd /work/main
for d in ${@:-test/fixtures/06-hung-workers/*.diff}; do
  f=$(npx tsx tmp/apply.ts $d)
  v=$(sed -n 's|^// Verdict: ||p' $d); c=$(sed -n 's|^// Check: ||p' $d)
  out=$(npx tsx --disable-warning=DEP0060 scripts/check.ts lesson-6 --file $f --only "$c" 2>&1); rc=$?
  if [[ $rc == 1 ]] && grep -qF -- "$v" <<<"$out"; then echo "OK   $(basename $d)"; else echo "BAD  $(basename $d) rc=$rc"; echo "$out" | tail -12; fi
done
