"""The space manager's web page: live taps, readers and doors, the queue, the access log.

``service.AdminService`` is one supervised part of the daemon (aiohttp on the
``[admin]`` listener, loopback by default). The pieces, one concept each:
``password`` (the argon2 hash file), ``sessions`` (cookie sessions, CSRF, throttled
logins), ``feed`` (the decision hook that streams taps to open pages as server-sent
events), ``accesslog`` (every decision in SQLite, pruned after ``access_log_days``),
``pages`` (server-rendered HTML in English and German) and ``web`` (the routes).
"""
