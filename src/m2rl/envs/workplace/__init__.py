"""The workplace sandbox of WorkBench / NeMo Gym's `workplace_assistant`: state, tools, schemas, generated data
and the task generator."""
