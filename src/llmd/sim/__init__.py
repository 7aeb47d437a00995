"""`llmd sim`: a fast local OpenAI-compatible simulator modelled on llm-d-inference-sim v0.8.2.

Layout (one concern per module):
  config     SimConfig (every knob), Go-like durations, fault specs, validation
  protocol   hand-written HTTP/1.1 asyncio.Protocol (keep-alive, pipelining, Content-Length / chunked)
  app        routes and the request life cycle (parse, queue, prefill, tokens at absolute deadlines, faults)
  engine     max-num-seqs slots with a FIFO waiting queue
  latency    TTFT / ITL formulas incl. time-factor-under-load
  kvcache    per-replica block cache (used/unused blocks, eviction, cached-prefix counting)
  tokenizer  the sim's simple word/punctuation tokenizer and chat flattening
  frames     pre-encoded OpenAI JSON / SSE byte fragments
  faults     per-request fault choice (--fault rates, x-llmd-fault header)
  metrics    counters and the Prometheus exposition (vLLM metric names)
  record     --record JSONL ground-truth timings, buffered in memory
  server     SimServer (async), run_in_thread (own loop in a thread), serve (the CLI's N replicas)

Deliberate differences from upstream v0.8.2: latencies are not truncated to whole milliseconds;
`usage.prompt_tokens_details.cached_tokens` is always present (upstream added it in v0.10);
an error response never leaks the running gauge; a client that disconnects frees its slot at once.
"""
