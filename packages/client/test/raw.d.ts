// Vite's `?raw` imports (a file's text), as docs tests read docs/*.md.
declare module "*?raw" {
  const text: string;
  export default text;
}
