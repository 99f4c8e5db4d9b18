"""Reference implementations of the course's teachable pieces, one concept per module.

labs/ is generated from this package by tools/make_labs.py: same modules, same
signatures, with the parts the notebooks ask you to write cut out.
"""
