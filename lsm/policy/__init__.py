"""The policy language: YAML documents -> checked model -> reference decisions and compiled entries."""
