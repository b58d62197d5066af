"""Classification models (registered with task="classification")."""
