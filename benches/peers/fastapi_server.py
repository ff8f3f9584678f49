"""The seeds' own stack as a peer: FastAPI on uvicorn, with the guides' ConnectionManager.

One process, as the guides run it. A socket is registered by `connect`, told so with a
welcome frame (the load tool's cue that it is subscribed), and every body POSTed to
/publish is broadcast to all sockets by the manager's loop, as the guides write it.

    uvicorn fastapi_server:app --host 127.0.0.1 --port 4003
"""

from fastapi import FastAPI, Request, Response, WebSocket, WebSocketDisconnect

app = FastAPI()


class ConnectionManager:
    def __init__(self) -> None:
        self.active_connections: list[WebSocket] = []

    async def connect(self, websocket: WebSocket) -> None:
        await websocket.accept()
        self.active_connections.append(websocket)

    def disconnect(self, websocket: WebSocket) -> None:
        self.active_connections.remove(websocket)

    async def broadcast(self, message: str) -> None:
        dead = []
        for connection in self.active_connections:
            try:
                await connection.send_text(message)
            except Exception:
                dead.append(connection)
        for connection in dead:
            self.disconnect(connection)


manager = ConnectionManager()


@app.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    await manager.connect(websocket)
    try:
        await websocket.send_text('{"type":"welcome"}')
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        if websocket in manager.active_connections:
            manager.disconnect(websocket)


@app.post("/publish")
async def publish(request: Request) -> Response:
    await manager.broadcast((await request.body()).decode())
    return Response(status_code=204)
