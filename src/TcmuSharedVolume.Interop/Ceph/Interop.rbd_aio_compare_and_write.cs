using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRbd
{
    /// <summary>Compares cmpBuffer with the image at offset and writes buffer there only if equal, atomically in the OSD.
    /// A miscompare completes with -EILSEQ and sets *mismatchOffset. Pacific accepts one 512-byte aligned sector only.</summary>
    [LibraryImport(Library, EntryPoint = "rbd_aio_compare_and_write")]
    public static partial nint rbd_aio_compare_and_write(nint image, ulong offset, nuint length, byte* cmpBuffer, byte* buffer, nint completion, ulong* mismatchOffset, int opFlags);
}
