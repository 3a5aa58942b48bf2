# tug's tracking relay, run by a run pod's `collector` container when the cluster cannot
# reach the machine running tug's server (compute `tracking: tunnel`; see tunnel.rs).
#
# The run's MLflow client connects to JOB_PORT; tug's server keeps a few idle connections
# open to HOST_PORT through the API server's port-forward. Each client connection is
# paired with one idle server connection (announced by one byte, so the server knows to
# replace it) and the bytes are copied both ways. Both ports are on the pod's loopback:
# only this pod's containers and a port-forward reach them.
#
# Standard library only (Python >= 3.7): it runs in the run's own image.
import asyncio
import os
import sys

JOB_PORT = int(os.environ.get("TUG_RELAY_JOB_PORT", "47617"))
HOST_PORT = int(os.environ.get("TUG_RELAY_HOST_PORT", "47618"))
# How long a client connection waits for tug's server to hold a connection open.
WAIT_SECONDS = float(os.environ.get("TUG_RELAY_WAIT_SECONDS", "60"))


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except Exception:
        pass
    finally:
        writer.close()


async def main():
    idle = asyncio.Queue()

    async def from_server(reader, writer):
        await idle.put((reader, writer))

    async def from_client(reader, writer):
        loop = asyncio.get_running_loop()
        end = loop.time() + WAIT_SECONDS
        while True:
            try:
                s_reader, s_writer = await asyncio.wait_for(
                    idle.get(), max(end - loop.time(), 0.001)
                )
            except asyncio.TimeoutError:
                print("tug relay: no connection from tug's server within %g s" % WAIT_SECONDS,
                      file=sys.stderr, flush=True)
                writer.close()
                return
            # A port-forward that ended while idle has delivered its end of file.
            if s_reader.at_eof() or s_writer.is_closing():
                s_writer.close()
                continue
            try:
                s_writer.write(b"\x01")
                await s_writer.drain()
            except Exception:
                s_writer.close()
                continue
            break
        await asyncio.gather(pipe(reader, s_writer), pipe(s_reader, writer))

    async def drop_ended():
        # Idle connections whose port-forward ended: closed now, not when next popped
        # (the server replaces idle ones every few minutes; their sockets must not pile up).
        while True:
            await asyncio.sleep(30)
            for _ in range(idle.qsize()):
                s_reader, s_writer = idle.get_nowait()
                if s_reader.at_eof() or s_writer.is_closing():
                    s_writer.close()
                else:
                    idle.put_nowait((s_reader, s_writer))

    await asyncio.start_server(from_server, "127.0.0.1", HOST_PORT)
    await asyncio.start_server(from_client, "127.0.0.1", JOB_PORT)
    await drop_ended()


asyncio.run(main())
