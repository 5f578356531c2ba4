// Starts `hvconf lsp` (the `hvconf.command` setting) for .hv files. Install: `npm install` in
// this folder, then `code --install-extension` of a package made with `npx @vscode/vsce package`,
// or open the folder in VS Code and press F5.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const [command, ...args] = vscode.workspace.getConfiguration("hvconf").get("command");
  client = new LanguageClient(
    "hvconf",
    "hvconf",
    { run: { command, args }, debug: { command, args } },
    { documentSelector: [{ scheme: "file", language: "hvconf" }] },
  );
  context.subscriptions.push({ dispose: () => client && client.stop() });
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
