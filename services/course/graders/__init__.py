"""The checks of each graded lab, one module per lab (see seckill.course.grader for the runner).

Each module defines CHECKS: a list of Check(title, func, hint, timeout). A check
function gets the learner's module and a Context (servers, fresh names), drives
the learner's code, and calls expect(...) with a hint that names the idea the
code misses, never the code that fixes it.
"""
