"""The zoo: one annotated file per architecture (import the file you want, e.g. tinyzoo.models.ponder_net)."""
