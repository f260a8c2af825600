import type { Range } from '../core/ranges.js';
import type { ImageNote, MemoryImage } from '../formats/types.js';
import type { PhysicalSource } from './types.js';

/** An existing dump read as a source: conversion is reader → the same pipeline → writer. */
export class ImageSource implements PhysicalSource {
  readonly kind = 'image' as const;
  readonly pageSize = 4096;
  constructor(
    private readonly image: MemoryImage,
    readonly path: string,
  ) {}
  get ranges(): readonly Range[] {
    return this.image.runs;
  }
  get notes(): readonly ImageNote[] {
    return this.image.notes;
  }
  get info(): Record<string, unknown> {
    return { inputFormat: this.image.format, ...this.image.details };
  }
  async read(addr: bigint, buf: Buffer, length: number): Promise<number> {
    const b = await this.image.read(addr, length);
    b.copy(buf, 0);
    return b.length;
  }
  close(): Promise<void> {
    return this.image.close();
  }
}
