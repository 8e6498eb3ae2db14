import { UpstreamError } from '../../errors.ts'
import type { FetchLike } from '../../outbound/guard.ts'
import { deadline, errorText, snippet } from './http.ts'

export interface ImTarget {
  channelId: string
  toUserId: string
}

export type ImBridgeClient = ReturnType<typeof createImBridgeClient>

/** HTTP client of the IM bridge's internal send endpoints (shared-secret auth). */
export function createImBridgeClient(options: {
  url: string
  secret: string
  timeoutMs?: number
  fetch?: FetchLike
}) {
  const base = options.url.replace(/\/+$/, '')
  const timeoutMs = options.timeoutMs ?? 60_000
  const doFetch: FetchLike = options.fetch ?? fetch

  async function post(path: string, body: Record<string, unknown>, signal?: AbortSignal) {
    const limit = deadline(signal, timeoutMs)
    let res: Response
    let text: string
    try {
      res = await doFetch(base + path, {
        method: 'POST',
        signal: limit.signal,
        headers: { 'content-type': 'application/json', 'x-internal-secret': options.secret },
        body: JSON.stringify(body),
      })
      text = await res.text()
    } catch (err) {
      if (limit.timedOut())
        throw new UpstreamError(
          `IM bridge did not answer POST ${path} within ${timeoutMs} ms; the message may or ` +
            'may not have been delivered — do not resend blindly, tell the user instead',
          { cause: err },
        )
      if (signal?.aborted)
        throw new UpstreamError(`POST ${path} to the IM bridge was cancelled by the caller`, {
          cause: err,
        })
      throw new UpstreamError(
        `IM bridge at ${base} is unreachable (POST ${path}: ${errorText(err)}); ` +
          'nothing was sent — retry in a moment, or give the answer in your reply instead',
        { cause: err },
      )
    }
    if (!res.ok)
      throw new UpstreamError(
        `IM bridge answered ${res.status} to POST ${path}: ${snippet(text)}; ` +
          'nothing was sent — ' +
          (res.status >= 500
            ? 'retry in a moment, or give the answer in your reply instead'
            : 'check the arguments (size, format, caption), or give the answer in your reply'),
      )
  }

  const target = (to: ImTarget) => ({ channel_id: to.channelId, to_user_id: to.toUserId })

  return {
    sendMessage(to: ImTarget, text: string, opts: { signal?: AbortSignal } = {}) {
      return post('/api/internal/imbridge/send', { ...target(to), text }, opts.signal)
    },

    sendImage(
      to: ImTarget,
      image: { base64: string; format?: string; caption?: string },
      opts: { signal?: AbortSignal } = {},
    ) {
      const body: Record<string, unknown> = { ...target(to), image_base64: image.base64 }
      if (image.format !== undefined) body.format = image.format
      if (image.caption !== undefined) body.caption = image.caption
      return post('/api/internal/imbridge/send-image', body, opts.signal)
    },

    sendFile(
      to: ImTarget,
      file: { base64: string; filename: string; caption?: string },
      opts: { signal?: AbortSignal } = {},
    ) {
      const body: Record<string, unknown> = {
        ...target(to),
        file_base64: file.base64,
        filename: file.filename,
      }
      if (file.caption !== undefined) body.caption = file.caption
      return post('/api/internal/imbridge/send-file', body, opts.signal)
    },
  }
}
