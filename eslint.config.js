import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules/**", "**/.cache/**", "data/**"] },
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts"],
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
      "no-console": "off",
      eqeqeq: ["error", "always", { null: "ignore" }],
    },
  },
  {
    // Connectors and the runtime they use stand on their own: the daemon assembles them, never the other way round.
    files: ["connectors/**/*.ts", "runtime/**/*.ts", "schema-registry/**/*.ts", "config/**/*.ts"],
    ignores: ["**/*.test.ts", "connectors/topics/contract-suite.ts"],
    rules: {
      "no-restricted-imports": ["error", { patterns: [{ group: ["**/daemon/*"], message: "connectors, runtime, registry and config must not import the daemon (runtime helpers live in runtime/)" }] }],
    },
  },
);
