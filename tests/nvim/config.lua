-- tests/test_nvim.py: Neovim, headless, attaches `hvconf lsp` with editors/nvim/hvconf.lua,
-- opens HVCONF_NVIM_FILE, waits for the server's diagnostics and writes them, one JSON
-- object a line, to HVCONF_NVIM_OUT; then quits. Nothing is typed or saved.
package.path = vim.env.HVCONF_NVIM_RUNTIME .. "/?.lua;" .. package.path
local hvconf = require("hvconf")
hvconf.setup()

vim.cmd("edit " .. vim.fn.fnameescape(vim.env.HVCONF_NVIM_FILE))
local bufnr = vim.api.nvim_get_current_buf()
local out = vim.env.HVCONF_NVIM_OUT
local lines = {}

local arrived = vim.wait(tonumber(vim.env.HVCONF_NVIM_TIMEOUT_MS or "60000"), function()
  return #vim.diagnostic.get(bufnr) > 0
end, 50)

if arrived then
  for _, d in ipairs(vim.diagnostic.get(bufnr)) do
    table.insert(lines, vim.fn.json_encode({
      filetype = vim.bo[bufnr].filetype, lnum = d.lnum, col = d.col, severity = d.severity,
      code = d.code or (d.user_data and d.user_data.lsp and d.user_data.lsp.code),
      source = d.source, message = d.message,
    }))
  end
else
  table.insert(lines, vim.fn.json_encode({ error = "no diagnostics arrived" }))
end
vim.fn.writefile(lines, out)
vim.lsp.stop_client(hvconf.client_id)
vim.wait(5000, function() return vim.lsp.get_client_by_id(hvconf.client_id) == nil end, 50)
vim.cmd("qall!")
