# Your workspace. Generated from solutions/__init__.py by tools/make_labs.py;
# write the missing parts here (the notebook walks you through them).
# Course developers: edit solutions/__init__.py and regenerate, never this file.
"""Reference implementations of the course's teachable pieces, one concept per module.

labs/ is generated from this package by tools/make_labs.py: same modules, same
signatures, with the parts the notebooks ask you to write cut out.
"""
