import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { Pulseboard } from "pulseboard";
import { PulseboardProvider } from "pulseboard/react";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import "./style.css";

// Where the server is, and the key that may write the list (a share link would carry it):
// ?server=http://127.0.0.1:3000&token=pb_… . Without a key the list is read-only.
const params = new URLSearchParams(location.search);
const person = localStorage.getItem("person") ?? `p${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
localStorage.setItem("person", person);

// One client and one query client for the page, made outside React.
const client = new Pulseboard({
  url: params.get("server") ?? "http://127.0.0.1:3000",
  token: params.get("token"),
  person,
});
const queryClient = new QueryClient();

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <PulseboardProvider client={client}>
      <QueryClientProvider client={queryClient}>
        <App />
      </QueryClientProvider>
    </PulseboardProvider>
  </StrictMode>,
);
