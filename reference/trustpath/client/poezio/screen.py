"""Where the trust_path plugin's words go in poezio: a conversation, the current tab, or the info
buffer."""

from __future__ import annotations

from typing import Any

from poezio import tabs
from poezio.ui.types import InfoMessage


class Screen:
    """Lines for the person, through poezio's public API (``core``, the plugin's ``api``)."""

    def __init__(self, core: Any, api: Any) -> None:
        self.core = core
        self.api = api

    def info(self, text: str, level: str = "Info") -> None:
        """``text`` in poezio's info buffer (``level``: ``Info``, ``Warning``, ``Error``)."""
        self.api.information(text, level)

    def in_tab(self, tab: Any, text: str) -> None:
        """``text`` as an information line in ``tab``, drawn at once if it is the current tab."""
        tab.add_message(InfoMessage(text))
        if tab is self.core.tabs.current_tab:
            self.core.refresh_window()

    def command_output(self, lines: list[str], level: str = "Info") -> None:
        """Command output: in the current conversation if there is one, else in the info buffer."""
        tab = self.api.current_tab()
        if isinstance(tab, tabs.ChatTab):
            self.in_tab(tab, "\n".join(lines))
        else:
            self.info("\n".join(lines), level)

    def about(self, jid: Any, text: str) -> None:
        """``text`` in the conversation with ``jid`` if one is open, else in the info buffer as an error."""
        tab = self.core.get_conversation_by_jid(jid, create=False)
        if tab is not None:
            self.in_tab(tab, text)
        else:
            self.info(f"trust_path: {text}", "Error")
