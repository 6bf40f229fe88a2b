"""What runs on a node for one trial: the actor, the runner, its folder, snapshots, staging, and the
only way the host opens files an agent wrote (agent_files). Import-light: the actor answers before
pandas and the grading stack load."""
