"""A fifth family added as docs/architecture.md says: this folder and a preset, no edit anywhere else.

tests/pvdm/test_family_seam.py puts this folder's parent on `pvdm.families.__path__`, which is what placing the
folder at pvdm/families/toy/ does.
"""
