"""The orchestrator: one Call wiring transport, listener, brain, voice and tools."""
