"""Closed forms that explain rather than attack: Karpathy's toy, logistic regression under a max-norm
attack, linear templates, and how linear a network is along a line through an input."""

# The closed forms live in the submodules (advex.theory.toy, .linear, .templates, .linearity); nothing is
# re-exported here.
__all__: list[str] = []
