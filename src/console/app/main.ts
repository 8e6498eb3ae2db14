import { checkKey, createApi, forgetKey, saveKey, savedKey } from './api.ts'
import { h, fill } from './dom.ts'
import { sessionPage } from './session-page.ts'
import { sessionsPage } from './sessions-page.ts'

const main = document.getElementById('main')!
const conn = document.getElementById('conn')!
const account = document.getElementById('account')!
let current: AbortController | null = null

/** The key form: nothing else is shown until the broker takes a key. */
function login(message = '') {
  const key = h('input', { id: 'api-key', type: 'password', autocomplete: 'off', required: true })
  const note = h('p', { class: message ? 'error' : 'note', role: 'alert' }, message)
  const submit = h('button', { type: 'submit' }, 'Log in')
  fill(account)
  fill(
    main,
    h(
      'form',
      {
        class: 'login',
        onsubmit: async (e) => {
          e.preventDefault()
          submit.disabled = true
          try {
            if (await checkKey(key.value)) {
              saveKey(key.value)
              return route()
            }
            note.className = 'error'
            note.textContent = 'The broker refused this key.'
          } catch (err) {
            note.className = 'error'
            note.textContent = (err as Error).message
          } finally {
            submit.disabled = false
          }
        },
      },
      h('h2', {}, 'Log in'),
      h('label', { for: 'api-key' }, 'API key'),
      key,
      submit,
      note,
    ),
  )
  key.focus()
}

function logout(message = '') {
  current?.abort()
  forgetKey()
  conn.textContent = ''
  login(message)
}

/** Shows the page the address names: `#/` the sessions, `#/sessions/<id>` one of them. */
function route() {
  current?.abort()
  const key = savedKey()
  if (key === null) return login()
  current = new AbortController()
  const api = createApi(key, () => logout('The broker refused the key; log in again.'))
  fill(account, h('button', { type: 'button', onclick: () => logout() }, 'Log out'))
  const m = /^#\/sessions\/(.+)$/.exec(location.hash)
  conn.textContent = ''
  fill(
    main,
    m
      ? sessionPage(api, decodeURIComponent(m[1]!), current.signal, (s) => (conn.textContent = s))
      : sessionsPage(api, current.signal),
  )
}

window.addEventListener('hashchange', route)
route()
