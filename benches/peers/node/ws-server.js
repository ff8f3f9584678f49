// Node.js `ws` as a peer: the library's own broadcast pattern (every client, one send each).
// A socket gets a welcome frame on connection (the load tool's cue that it is subscribed);
// every body POSTed to /publish goes to every open socket.
//
//   node ws-server.js 127.0.0.1 4002
const http = require("node:http");
const { WebSocketServer, WebSocket } = require("ws");

const [host, port] = process.argv.slice(2);
const server = http.createServer((req, res) => {
  if (req.method !== "POST" || req.url !== "/publish") {
    res.writeHead(404).end();
    return;
  }
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    for (const client of wss.clients) {
      if (client.readyState === WebSocket.OPEN) client.send(body, { binary: false });
    }
    res.writeHead(204).end();
  });
});
const wss = new WebSocketServer({ server, path: "/ws", perMessageDeflate: false });
wss.on("connection", (socket) => socket.send('{"type":"welcome"}'));
server.listen(Number(port), host, () => console.log(`listening on ${host}:${port}`));
