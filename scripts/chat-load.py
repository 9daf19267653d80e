import asyncio, json, sys, time
port = int(sys.argv[1]); CLIENTS = 16; SENDS = 1000
async def status():
    r, w = await asyncio.open_connection('127.0.0.1', port)
    w.write(b'{"op":"status"}\n'); await w.drain()
    line = await r.readline(); w.close()
    return json.loads(line)
async def client(c, lat):
    r, w = await asyncio.open_connection('127.0.0.1', port)
    for i in range(SENDS):
        t = time.perf_counter()
        w.write(json.dumps({"op": "send", "id": f"b{c}-{i}-{time.time_ns()}", "text": "x"}).encode() + b"\n")
        await w.drain()
        resp = json.loads(await r.readline())
        if resp.get("ok"): lat.append(time.perf_counter() - t)
    w.close()
async def main():
    for _ in range(100):
        try:
            s = await status()
            if s.get("leader") == 3 and s.get("role") == "leader": break
        except Exception: pass
        await asyncio.sleep(0.2)
    lat = []
    t0 = time.perf_counter()
    await asyncio.gather(*(client(c, lat) for c in range(CLIENTS)))
    dt = time.perf_counter() - t0
    lat.sort()
    if not lat: print("0 - -"); return
    print(f"{len(lat)/dt:.0f} {lat[len(lat)//2]*1000:.2f} {lat[int(len(lat)*0.99)]*1000:.2f}")
asyncio.run(main())
