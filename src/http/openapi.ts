import * as z from 'zod';
import type { HttpMethod, Operation, Route } from './types.js';

/**
 * The OpenAPI 3.1 document of the whole API, generated from the route table and its zod schemas:
 * what the handlers validate is what the document says, and a route cannot be left out.
 */
const problemSchema = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  requestId: z.string(),
  errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
});

type JsonSchema = Record<string, unknown>;

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as JsonSchema;
  return rest;
}

function pathParameters(template: string): string[] {
  return template
    .split('/')
    .filter((segment) => segment.startsWith('{') && segment.endsWith('}'))
    .map((segment) => segment.slice(1, -1));
}

function operationObject<S>(route: Route<S>, method: HttpMethod, operation: Operation<S>): JsonSchema {
  const parameters = [
    ...pathParameters(route.route).map((name) => ({ name, in: 'path', required: true, schema: { type: 'string' } })),
    ...Object.entries(operation.query?.shape ?? {}).map(([name, field]) => ({
      name,
      in: 'query',
      required: !(field as z.ZodType).safeParse(undefined).success,
      schema: jsonSchema(field as z.ZodType, 'input'),
    })),
    ...Object.entries(operation.headers ?? {}).map(([name, header]) => ({ name, in: 'header', required: header.required, description: header.description, schema: { type: 'string' } })),
  ];
  const responses = Object.fromEntries(
    Object.entries(operation.responses).map(([status, response]) => {
      const content = response.schema
        ? { 'application/json': { schema: jsonSchema(response.schema, 'output') } }
        : Number(status) >= 400
          ? { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } }
          : undefined;
      const headers = response.headers
        ? Object.fromEntries(Object.entries(response.headers).map(([name, description]) => [name, { description, schema: { type: 'string' } }]))
        : undefined;
      return [status, { description: response.description, ...(headers ? { headers } : {}), ...(content ? { content } : {}) }];
    }),
  );
  return {
    operationId: `${route.name}${method[0]}${method.slice(1).toLowerCase()}`,
    summary: operation.summary,
    ...(operation.description ? { description: operation.description } : {}),
    tags: [operation.access],
    security: operation.access === 'anonymous' ? [] : [{ entraId: [] }],
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(operation.requestBody
      ? { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(operation.requestBody, 'input') } } } }
      : {}),
    responses,
  };
}

export function openApiDocument<S>(routes: Route<S>[]): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const route of routes) {
    const item: Record<string, JsonSchema> = {};
    for (const [method, operation] of Object.entries(route.operations) as [HttpMethod, Operation<S>][]) {
      item[method.toLowerCase()] = operationObject(route, method, operation);
    }
    paths[`/api/${route.route}`] = item;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'registry-broker',
      version: '1.0.0',
      description: 'Short-lived, repository-scoped container-registry credentials for Azure workloads, in exchange for their managed-identity token.',
    },
    paths,
    components: {
      schemas: { Problem: jsonSchema(problemSchema, 'output') },
      securitySchemes: {
        entraId: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: "An Entra ID access token whose audience is the broker (from IMDS for workloads); admin routes need the admin app role in 'roles'.",
        },
      },
    },
  };
}
