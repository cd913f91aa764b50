#!/usr/bin/env bash
# The embedded default scored by a local judge, in one command (`make judged-sweep`), offline on CPU:
#   1. `transformers serve` serves the builtin tiny model on 127.0.0.1 as an OpenAI-compatible judge;
#   2. a 2-cell sweep (dataset=dolly,oasst) answers ELYZA-tasks-100 (fixture), the samples prompts and the
#      human_eval question set; the judge scores the ELYZA answers 1-5 and compares the two cells pairwise;
#   3. the report (outputs/sweeps/<time>/report/report.md) shows the absolute scores, the pairwise win rate,
#      the grading export (sheet + key) and the samples side by side.
# The tiny model is no judge. A logit bias (judge.extra_body, passed through the OpenAI API to the server) makes
# its one-token replies a digit 1-5 (absolute) or A/B/C (pairwise), so the whole path produces scores and a
# win rate; the numbers themselves mean nothing. Without the bias most of its replies are unparseable, and the
# report counts them as such. Point judge.base_url / judge.model at a real model for real scores (README).
set -euo pipefail
PY=${PY:-.venv/bin/python}
PORT=${JUDGE_PORT:-8765}
BIN=$(dirname "$PY")
MODEL=$("$PY" -c "import yaml; from jsweep.models.tiny import build_tiny; print(build_tiny(yaml.safe_load(open('conf/model/tiny.yaml'))['model']['arch']))")
"$BIN/transformers" serve "$MODEL" --host 127.0.0.1 --port "$PORT" --device cpu --log-level warning >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
"$PY" - "$PORT" <<'PY'
import sys, time, urllib.request
for _ in range(180):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=2)
        sys.exit(0)
    except OSError:
        time.sleep(1)
sys.exit("transformers serve did not come up")
PY
# token ids of "1".."5" and "A","B","C" in the judge's tokenizer, for the logit bias
read -r DIGITS LETTERS < <("$PY" -c "
from transformers import AutoTokenizer
t = AutoTokenizer.from_pretrained('$MODEL')
ids = lambda cs: ','.join(f'{t.encode(c, add_special_tokens=False)[0]}:100.0' for c in cs)
print(ids('12345'), ids('ABC'))")
"$PY" -m jsweep -m dataset=dolly,oasst 'eval=[elyza_tasks_100,samples,human_eval]' \
    eval.elyza_tasks_100.max_new_tokens=64 eval.samples.max_new_tokens=64 eval.human_eval.max_new_tokens=64 \
    judge.base_url="http://127.0.0.1:$PORT/v1" judge.model="$MODEL" judge.max_tokens=1 judge.concurrency=1 \
    "judge.extra_body={logit_bias:{$DIGITS}}" \
    "judge.pairwise={a:'dataset=dolly',b:'dataset=oasst',extra_body:{logit_bias:{$LETTERS}}}" "$@"
