"""An MCP client this project did not write: the official Python SDK (`mcp`
on PyPI) drives iapeerd's send_to_peer over Streamable HTTP.

    python mcp_client.py URL IDENTITY TARGET MESSAGE [--uds PATH] [--bearer TOKEN]

Does initialize, tools/list and tools/call, and prints one JSON document:
{"protocol": …, "server": …, "tools": [{"name", "inputSchema"}], "result":
{"isError", "structuredContent", "text"}}. Exits 1 when the tool said it
failed (the message was NOT delivered), 0 when it delivered.
"""

import argparse
import asyncio
import json
import sys

import httpx2
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("identity", help="X-IAPeer-Identity ('' to send none)")
    ap.add_argument("target")
    ap.add_argument("message")
    ap.add_argument("--uds")
    ap.add_argument("--bearer")
    ap.add_argument("--runtime")
    a = ap.parse_args()

    headers = {}
    if a.identity:
        headers["X-IAPeer-Identity"] = a.identity
    if a.bearer:
        headers["Authorization"] = f"Bearer {a.bearer}"
    transport = httpx2.AsyncHTTPTransport(uds=a.uds) if a.uds else None
    async with httpx2.AsyncClient(
        headers=headers, transport=transport, timeout=httpx2.Timeout(30.0, read=300.0)
    ) as http:
        async with streamable_http_client(a.url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                tools = await session.list_tools()
                args = {"personality": a.target, "message": a.message}
                if a.runtime:
                    args["runtime"] = a.runtime
                res = await session.call_tool("send_to_peer", args)
                text = "\n".join(c.text for c in res.content if c.type == "text")
                status = None
                sid = (res.structured_content or {}).get("id")
                if sid:
                    st = await session.call_tool("message_status", {"id": sid})
                    status = {"isError": bool(st.is_error), "structuredContent": st.structured_content}
                print(
                    json.dumps(
                        {
                            "protocol": init.protocol_version,
                            "server": init.server_info.name,
                            "tools": [
                                {"name": t.name, "inputSchema": t.input_schema}
                                for t in tools.tools
                            ],
                            "result": {
                                "isError": bool(res.is_error),
                                "structuredContent": res.structured_content,
                                "text": text,
                            },
                            "status": status,
                        }
                    )
                )
    return 1 if res.is_error else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
