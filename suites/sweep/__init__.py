"""The sweep: the plan (tasks from the suite descriptors), the per-cell runtime, result rows, the run
folder (writer, env.json, lock, resume) and running a plan through an executor."""
