"""Generated numba kernels and the scripts that generate them (see README.md beside this file).

Nothing here is edited by hand except the ``gen_*.py`` generators and the hand-written parts of
``encode8.py`` / ``encodep.py`` outside their ``# >>> gen_encode`` blocks."""
