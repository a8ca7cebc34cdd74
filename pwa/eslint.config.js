// eslint.config.js — the React hooks rules (rules-of-hooks, exhaustive-deps) over the PWA's
// sources. TypeScript 7 ships no JavaScript compiler API, which typescript-eslint's parser needs,
// so the sources are parsed by Babel's TypeScript syntax plugin instead (these two rules read
// syntax only; `tsc` still does the type checking).
import babelParser from "@babel/eslint-parser";
import reactHooks from "eslint-plugin-react-hooks";

export default [
  { ignores: ["dist/", "src/gen/", "node_modules/", "playwright-report/", "test-results/"] },
  {
    files: ["src/**/*.{ts,tsx}"],
    languageOptions: {
      parser: babelParser,
      parserOptions: {
        requireConfigFile: false,
        babelOptions: { babelrc: false, configFile: false, presets: ["@babel/preset-typescript"] },
      },
    },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    plugins: { "react-hooks": reactHooks },
    rules: {
      "react-hooks/rules-of-hooks": "error",
      "react-hooks/exhaustive-deps": "error",
    },
  },
];
