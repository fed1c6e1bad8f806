"""The life of a mount, one module per step (fuseshim.mount() reads them
top to bottom):

- state.py           the session's one state and its allowed transitions
- path_choice.py     which startup path (sync or classic), and why
- capabilities.py    what fuseshim asks the kernel for in INIT
- event_loop.py      the asyncio loop for ``async def`` handlers
- sync_startup.py    SYNC_INIT: arm /dev/fuse, one reader, mount(2) answers INIT
- classic_startup.py libfuse's mount (or fusermount3), then wait for INIT
- init_watchdog.py   abort the connection when INIT is not answered in time
- teardown.py        unmount, stop the readers, destroy the session

How requests are served after INIT is in fuseshim/serving/.
"""
