"""Changes with undo: the edit kinds and how they are applied, snapshots, restore,
and the maintenance window around them."""
