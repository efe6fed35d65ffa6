#!/usr/bin/env bash
# Serve NVIDIA Nemotron-3-Nano-30B-A3B with vLLM behind an OpenAI-compatible API, with tool
# calling and reasoning parsing switched on — the two things gpudoc relies on.
#
#   infra/vllm/serve-nemotron.sh                # BF16 weights, one GPU (H100/H200/A100-80GB)
#   MODEL=nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-FP8 infra/vllm/serve-nemotron.sh
#
# Needs vLLM >= 0.12 (pip install vllm, in its own environment: it is not a gpudoc dependency).
# Older vLLM releases (0.11.x) need the reasoning-parser plugin shipped with the weights instead of
# the built-in parser: set REASONING_PARSER=nano_v3 and
# REASONING_PLUGIN=/path/to/weights/nano_v3_reasoning_parser.py.
set -euo pipefail

MODEL="${MODEL:-nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16}"
PORT="${PORT:-8000}"
MAX_MODEL_LEN="${MAX_MODEL_LEN:-65536}"      # gpudoc's threads are trimmed to LLM_CONTEXT_TOKENS
TP="${TP:-1}"
REASONING_PARSER="${REASONING_PARSER:-nemotron_v3}"
TOOL_PARSER="${TOOL_PARSER:-qwen3_coder}"    # Nemotron 3 emits Qwen3-style <tool_call> XML

plugin_args=()
if [[ -n "${REASONING_PLUGIN:-}" ]]; then
  plugin_args=(--reasoning-parser-plugin "$REASONING_PLUGIN")
fi

exec vllm serve "$MODEL" \
  --served-model-name "$MODEL" \
  --host "${HOST:-0.0.0.0}" --port "$PORT" \
  --tensor-parallel-size "$TP" \
  --max-model-len "$MAX_MODEL_LEN" \
  --max-num-seqs "${MAX_NUM_SEQS:-32}" \
  --enable-prefix-caching \
  --trust-remote-code \
  --enable-auto-tool-choice \
  --tool-call-parser "$TOOL_PARSER" \
  --reasoning-parser "$REASONING_PARSER" \
  "${plugin_args[@]}" \
  ${VLLM_EXTRA_ARGS:-}
