-- hvconf's language server in Neovim (0.7 and later): put this file on your runtimepath
-- (e.g. ~/.config/nvim/lua/hvconf.lua) and call require("hvconf").setup() from init.lua.
-- Also the configuration of tests/test_nvim.py, which runs Neovim headless with it.
local M = {}

-- The command that starts the server; HVCONF_LSP_CMD (a Python interpreter) lets a test
-- start the checkout's own hvconf.
local function command()
  local python = vim.env.HVCONF_LSP_PYTHON
  if python and python ~= "" then
    return { python, "-m", "hvconf", "lsp" }
  end
  return { "hvconf", "lsp" }
end

-- Start (once) and attach the server to buffer `bufnr`; returns the client id.
function M.attach(bufnr)
  local path = vim.api.nvim_buf_get_name(bufnr)
  if M.client_id == nil then
    M.client_id = vim.lsp.start_client({
      name = "hvconf",
      cmd = command(),
      root_dir = vim.fn.fnamemodify(path, ":p:h"),
    })
  end
  vim.lsp.buf_attach_client(bufnr, M.client_id)
  return M.client_id
end

function M.setup()
  -- An autocommand rather than vim.filetype.add: Neovim 0.7 uses the latter only with
  -- g:do_filetype_lua set, and a config started with -u has no filetype detection on.
  vim.api.nvim_create_autocmd({ "BufRead", "BufNewFile" }, {
    pattern = "*.hv",
    callback = function() vim.bo.filetype = "hvconf" end,
  })
  vim.api.nvim_create_autocmd("FileType", {
    pattern = "hvconf",
    callback = function(args) M.attach(args.buf) end,
  })
end

return M
