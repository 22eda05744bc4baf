"""Stand-in RemoveBGVideo API: a seeded, deterministic world served over loopback HTTP."""
