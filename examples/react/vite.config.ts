import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [react()],
  base: "./",
  // pulseboard is linked from clients/js, which has a React of its own for its tests: use
  // this app's only.
  resolve: { dedupe: ["react", "react-dom"] },
});
