"""`llmd sim`: a fast local OpenAI-compatible simulator modelled on llm-d-inference-sim v0.8.2.

Layout (one concern per module):
  config     SimConfig (every knob), Go-like durations, fault specs, validation
  tokenizer  the sim's simple word/punctuation tokenizer and chat flattening
  kvcache    per-replica block cache (used/unused blocks, eviction, cached-prefix counting)
  latency    TTFT / ITL formulas incl. time-factor-under-load
  engine     max-num-seqs slots with a FIFO waiting queue, metrics counters, record buffer
  frames     pre-encoded OpenAI JSON / SSE byte fragments
  faults     per-request fault choice (--fault rates, x-llmd-fault header)
  protocol   hand-written HTTP/1.1 asyncio.Protocol (keep-alive, pipelining, chunked streams)
  server     SimServer (async) and run_in_thread (own loop in a thread)
"""
