"""The layer above the codecs: choose a codec per tensor (``planner``) and turn a stored blob
into decode jobs (``decode``). Pure like the codecs below it; the shell (``bigsmall.io``)
decides where the jobs run and where the bytes go."""
