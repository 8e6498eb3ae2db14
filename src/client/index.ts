// `cc-broker/client`: a typed client of a broker's external API, and the shapes it answers.
export { createClient, type BrokerClient, type ClientOptions, type TurnOutcome } from './client.ts'
export { BrokerApiError } from './errors.ts'
export * from './events.ts'
export type { Page, Session, Turn, TurnInput, TurnState } from './resources.ts'
