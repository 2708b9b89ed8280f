"""The shell: everything with side effects (files, threads, progress) lives here."""
