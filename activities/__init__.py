"""Activities: the side effects of automations, one per action kind."""
