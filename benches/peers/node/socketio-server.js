// Socket.IO as a peer, WebSocket transport only (no long-polling upgrade dance): every body
// POSTed to /publish is emitted to every connected socket as an "event".
//
//   node socketio-server.js 127.0.0.1 4005
const http = require("node:http");
const { Server } = require("socket.io");

const [host, port] = process.argv.slice(2);
const server = http.createServer((req, res) => {
  if (req.method !== "POST" || req.url !== "/publish") {
    res.writeHead(404).end();
    return;
  }
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    io.emit("event", JSON.parse(Buffer.concat(chunks).toString()));
    res.writeHead(204).end();
  });
});
const io = new Server(server, { transports: ["websocket"], serveClient: false });
server.listen(Number(port), host, () => console.log(`listening on ${host}:${port}`));
