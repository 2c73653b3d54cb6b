"""Mutants: deliberately broken subjects, each of which must fail the properties it targets."""
