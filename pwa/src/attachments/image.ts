// image.ts — images before they are encrypted: re-encoded through a canvas, which drops every
// metadata segment (EXIF with GPS, XMP, comments), with the EXIF orientation applied first
// (createImageBitmap, imageOrientation "from-image"); and a small JPEG thumbnail, which is
// encrypted and uploaded as its own attachment.

const THUMBNAIL_MAX = 320;

export interface PreparedImage {
  /** What gets encrypted: re-encoded without metadata, or the original when kept on purpose. */
  body: Blob;
  type: string;
  width: number;
  height: number;
  thumbnail: { blob: Blob; width: number; height: number };
}

async function encode(bitmap: ImageBitmap, width: number, height: number, type: string, quality: number): Promise<Blob> {
  if (typeof OffscreenCanvas !== "undefined") {
    const canvas = new OffscreenCanvas(width, height);
    const ctx = canvas.getContext("2d");
    if (!ctx) throw new Error("no 2D canvas");
    ctx.drawImage(bitmap, 0, 0, width, height);
    return canvas.convertToBlob({ type, quality });
  }
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  if (!ctx) throw new Error("no 2D canvas");
  ctx.drawImage(bitmap, 0, 0, width, height);
  return new Promise((resolve, reject) =>
    canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("the image could not be encoded"))), type, quality),
  );
}

/**
 * Decodes `file` (throws when it is not a decodable image), re-encodes it without metadata
 * unless `keepOriginal`, and makes its thumbnail.
 */
export async function prepareImage(file: File, keepOriginal: boolean): Promise<PreparedImage> {
  const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  try {
    const { width, height } = bitmap;
    // PNG and WebP stay lossless-capable in their own format; everything else becomes JPEG.
    const type = file.type === "image/png" || file.type === "image/webp" ? file.type : "image/jpeg";
    const body = keepOriginal ? file : await encode(bitmap, width, height, type, 0.92);
    const scale = Math.min(1, THUMBNAIL_MAX / Math.max(width, height));
    const tw = Math.max(1, Math.round(width * scale));
    const th = Math.max(1, Math.round(height * scale));
    const thumbnail = await encode(bitmap, tw, th, "image/jpeg", 0.75);
    return { body, type: keepOriginal ? file.type : type, width, height, thumbnail: { blob: thumbnail, width: tw, height: th } };
  } finally {
    bitmap.close();
  }
}
