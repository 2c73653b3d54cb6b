"""Built-in subjects: ``reference`` (this kit's oracle) and ``torchrl`` (torchrl + tensordict)."""
