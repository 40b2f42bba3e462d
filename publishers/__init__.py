"""Exchange with other registries: Credential Engine pull/push, peer feeds, state-list imports."""
