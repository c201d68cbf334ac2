// Type-level checks of the published declarations (dist/*.d.ts), compiled by
// `npm run check` (tsc --noEmit): what an app writes type-checks, and common
// mistakes do not.
import { ApiError, MissiveClient, type Chat, type LiveConnection, type Message, type Page } from "../dist/missive.js";

export async function usage(): Promise<void> {
  const client = new MissiveClient({ baseUrl: "http://localhost:8080", token: null, onUnauthorized: (e: ApiError) => void e.code });
  const live: LiveConnection = client.connect({ since: null, pingInterval: 25_000 });
  live.on("message", (message: Message, cursor: string) => void [message.seq, cursor]);
  live.on("receipt", (r) => {
    const status: "delivered" | "read" = r.status;
    void status;
  });
  live.on("state", (state, detail) => void [state === "reconnecting", detail.delay]);
  live.on("ready", ({ user, resumed }) => void [user.phoneNumber, resumed]);
  live.on("resync", (cursor: string) => void cursor);
  // @ts-expect-error: no such event
  live.on("mesage", () => {});
  // @ts-expect-error: a message listener gets a Message, not a string
  live.on("message", (m: string) => void m);
  // @ts-expect-error: a send names a chat (chatId) or a phone number (to)
  void live.send({ content: "hi" });
  const sent: Message = await live.send({ to: "+1234567890", content: "hi" });
  const page: Page<Chat> = await client.listChats({ limit: 20 });
  const more: Page<Chat> | null = await client.nextPage(page);
  // @ts-expect-error: status is delivered or read
  await client.markStatus(sent.chatId, sent.id, "seen");
  void more;
  try {
    await client.me();
  } catch (e) {
    if (e instanceof ApiError) void [e.status, e.code, e.message, e.requestId];
  }
}
