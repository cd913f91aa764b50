#!/bin/bash
# Builds, on a machine with PyPI, the packages a GPU machine without network needs beside its image
# (torch, transformers, accelerate, peft, pytest, ... are there), as three xz archives in .whl/ that
# benchmarks/gpu_session.sh unpacks into /tmp/site. Carried whole they stay under the device's 64 MiB:
#   siteA.tar.xz   lm-eval 0.4.13 (its task YAMLs dropped but japanese_leaderboard: jsweep builds its JGLUE
#                  tasks in code) and its needs, neologdn, emoji, fugashi, datasets, hydra-core, omegaconf,
#                  antlr4 4.9.3, rapidfuzz (the archive measured below also held py-spy 0.4.3)   ~9 MB
#   siteB.tar.xz   mlflow-skinny 3.17.2 with sqlalchemy/alembic (the tests' SQLite store), cryptography,
#                  trl 1.16.0 and their needs                                                    ~14 MB
#                  and DeepSpeed 0.19.8 (wheel built here with DS_BUILD_OPS=0: no op compiled) with
#                  hjson, ninja, py-cpuinfo, msgpack, einops                                     +2 MB
#   unidic.tar.xz  unidic-lite 1.0.8 installed (the MeCab dictionary JP-Stable's JSQuAD F1 needs: a 47 MB
#                  source package, 249 MB installed), xz -9e (about 15 CPU-minutes)             ~28 MB
# Usage: bash benchmarks/pack_site.sh [PYTHON]   (PYTHON: a Python whose pip downloads; default python3)
#        UNIDIC=0 bash benchmarks/pack_site.sh    skips unidic.tar.xz (runs that score no JSQuAD F1 with MeCab)
set -euo pipefail
PY=${1:-python3}
W=$(mktemp -d)
PLAT="--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64"
A="lm-eval==0.4.13 chardet==7.7.0 dataproperty==1.1.1 datasets==5.2.0 defusedxml==0.7.1 dill==0.4.1 emoji==2.16.0
   evaluate==0.4.6 fugashi==1.5.2 hydra-core==1.3.8 mbstrdecoder==1.1.5 more-itertools==11.2.1 multiprocess==0.70.19
   neologdn==0.5.6 nltk==3.10.4 omegaconf==2.3.0 pathvalidate==3.3.1 pytablewriter==1.2.1 rapidfuzz==3.14.6
   rouge-score==0.0.4 tabledata==1.3.5 tcolorpy==0.1.7 typepy==2.0.0"
B="mlflow-skinny==3.17.2 alembic==1.20.1 annotated-types==0.8.0 cachetools==8.0.2 cffi==2.1.1 cryptography==50.0.2
   databricks-sdk==0.162.0 fastapi==0.165.0 gitdb==4.0.12 gitpython==3.2.1 google-auth==2.63.0 importlib-metadata==10.2.0
   lazy-importer==0.1.0 mako==1.4.3 opentelemetry-api==1.45.2 opentelemetry-proto==1.45.2 opentelemetry-sdk==1.45.2
   opentelemetry-semantic-conventions==0.66b2 pyasn1==0.6.5 pyasn1-modules==0.4.2 pycparser==3.12 pydantic==2.14.4
   pydantic-core==2.50.5 python-dotenv==1.2.4 smmap==5.0.3 sqlalchemy==2.1.9 sqlparse==0.6.1 starlette==1.10.0
   trl==1.16.0 typing-inspection==0.4.5 uvicorn==0.54.0
   hjson==3.1.0 ninja==1.13.2 py-cpuinfo==9.0.0 msgpack==1.2.4 einops==0.8.2"
for part in A B; do
  mkdir -p "$W/w$part" "$W/site$part"
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $PLAT -d "$W/w$part" ${!part}
done
# source-only packages: pure Python, built here; antlr4 4.9.3 is what omegaconf 2.3 needs
$PY -m pip wheel -q --no-deps -w "$W/wA" word2number==1.1 sqlitedict==2.1.0 antlr4-python3-runtime==4.9.3
DS_BUILD_OPS=0 $PY -m pip wheel -q --no-deps --no-build-isolation -w "$W/wB" deepspeed==0.19.8
for part in A B; do
  $PY -m pip install -q --no-index --no-deps --no-compile --only-binary=:all: --python-version 3.12 --implementation cp \
      $PLAT --target "$W/site$part" "$W/w$part"/*.whl
done
find "$W/siteA/lm_eval/tasks" -mindepth 1 -maxdepth 1 -type d ! -name japanese_leaderboard -exec rm -rf {} +
mkdir -p .whl "$W/u"
tar -C "$W/siteA" -cf - . | xz -6 > .whl/siteA.tar.xz
tar -C "$W/siteB" -cf - . | xz -6 > .whl/siteB.tar.xz
if [[ ${UNIDIC:-1} != 0 ]]; then
  $PY -m pip install -q --no-deps --no-compile --target "$W/u" unidic-lite==1.0.8
  tar -C "$W/u" --exclude=__pycache__ -cf - unidic_lite unidic_lite-1.0.8.dist-info | xz -9e -T0 > .whl/unidic.tar.xz
fi
ls -la .whl
rm -rf "$W"
